"""ihook's performance suite: ``python -m bench`` (see bench/README.md).

Not part of the installed distribution. Kept free of imports so that the receiver
(``python -m bench.receiver``) starts light.
"""

__all__: list[str] = []

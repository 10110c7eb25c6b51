"""The built-in step types; importing this package registers them."""

from workflows.steps import emit as emit_step
from workflows.steps import filter as filter_step
from workflows.steps import lookup as lookup_step
from workflows.steps import records as records_steps
from workflows.steps import respond as respond_step
from workflows.steps import send as send_step
from workflows.steps import template as template_step
from workflows.steps import transfer as transfer_step
from workflows.steps import transform as transform_step

__all__ = [
    "emit_step",
    "filter_step",
    "lookup_step",
    "records_steps",
    "respond_step",
    "send_step",
    "template_step",
    "transfer_step",
    "transform_step",
]

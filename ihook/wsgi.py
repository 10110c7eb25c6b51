"""WSGI entry point for gunicorn: ``gunicorn ihook.wsgi:app``."""

from ihook.app import create_app

app = create_app()

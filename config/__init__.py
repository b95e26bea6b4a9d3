"""Configuration: settings classes (settings.py) and gunicorn settings (gunicorn.py)."""

"""Label Studio's own settings, with its request log kept at warnings.

Label Studio's development server logs every request line at INFO (``django.server``), and an
invite link carries the organisation's invite token in its query string: with that line in a
log, anyone who reads the log can join the instance. The toolkit starts each server with
``DJANGO_SETTINGS_MODULE`` naming this module (``PYTHONPATH`` pointing at this folder); every
other setting is Label Studio's own.
"""

# Label Studio's settings module reads django.conf.settings while it is imported (Sentry's set-up),
# which imports this module again, half done: the base settings must already be here by then.
from label_studio.core.settings.base import *  # noqa: F403
from label_studio.core.settings.label_studio import *  # noqa: F403
from label_studio.core.settings.label_studio import LOGGING

LOGGING["loggers"]["django.server"] = {"handlers": ["console"], "level": "WARNING", "propagate": False}

"""Main entry point for the openlibrary app.

Loaded by infogami's plugin machinery from plugin_modules in openlibrary.yml.
"""

import logging

import web

logger = logging.getLogger("openlibrary")


def setup():
    logger.info("Application init")
    web.template.Template.globals["site_title"] = "Open Library"

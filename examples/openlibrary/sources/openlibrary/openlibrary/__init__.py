"""Open Library Plugin."""

import web


def config_setup(config_file):
    """Loads the site configuration named on the command line."""
    import yaml

    with open(config_file) as f:
        config = yaml.safe_load(f)
    web.config.update(config)
    return config

"""`malt serve`: a finished run as an HTTP scoring service (pip install 'malt[serve]')."""

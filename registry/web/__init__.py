"""The web UI `mmgov serve` renders: pages over the service calls the API routes make.

Kept import-light: `registry.api.deps` reads sessions from `registry.web.session`, and the app
factory installs the pages with `registry.web.pages.install`.
"""

"""The operator dashboard and the puzzle page (issue 16), served by the api service.

views.py   the two HTML shells (/dashboard/, /puzzle/<id>/) and their static files, with a
           strict Content-Security-Policy: no inline script, no data ever rendered as HTML
api.py     the dashboard's JSON reads under /newapi/dashboard/ (admins only), paginated;
           every action (disable, cancel, ...) is a call of the services' own JSON API
static/    vanilla JavaScript (no build step): dashboard.js, puzzle.js, common.js, app.css
"""

from object_challenge.dashboard import api, views

bp = views.bp
api_bp = api.bp
MODELS = ()


def register(app):
    """Nothing to add: no models, commands or periodic tasks."""


__all__ = ["MODELS", "api_bp", "bp", "register"]

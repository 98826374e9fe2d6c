"""The HTML shells: the pages carry no data; their JavaScript reads the JSON API with the
token the user gives once (kept in sessionStorage for the tab, sent as Authorization)."""

from flask import Blueprint, render_template

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)

# Strict: scripts and styles from this origin only (no inline script or style attribute
# handlers), data from this origin only, nothing framed, no plugins.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@bp.after_request
def security_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    else:
        response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get("/dashboard/")
def dashboard():
    return render_template("dashboard/dashboard.html")


@bp.get("/puzzle/<int:puzzle_id>/")
def puzzle(puzzle_id):
    return render_template("dashboard/puzzle.html", puzzle_id=puzzle_id)

"""The api service's own routes: the index, the bucket list, internal routes for the gateway."""

from object_challenge.api import views

bp, internal_bp = views.bp, views.internal_bp

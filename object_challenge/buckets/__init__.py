"""Bucket admission (seed 004): the rule, S3 names, and the storage upstream stand-in.

rules.py the admission rule   names.py S3 naming rules   service.py admit, then create upstream
models.py Bucket              views.py POST /bucket (api service) and /arvan (storage service)
"""

from object_challenge.buckets import views
from object_challenge.buckets.models import Bucket

bp, storage_bp = views.bp, views.storage_bp

MODELS = (Bucket,)


def register(app):
    app.extensions["oc.models"].extend(MODELS)

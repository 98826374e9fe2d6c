"""S3 bucket naming rules: the reason a name is refused, or None when it is valid.

Same rules as ``lua/oc/names.lua``; both are tested from ``tests/cases/bucket_names.json``.
"""

import re

_ALLOWED = re.compile(r"^[a-z0-9.-]+$")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


def name_problem(name):
    if not 3 <= len(name) <= 63:
        return "bucket names must be 3 to 63 characters long"
    if not _ALLOWED.match(name):
        return "bucket names may contain only lowercase letters, digits, '-' and '.'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "bucket names must start and end with a letter or digit"
    if ".." in name:
        return "bucket names must not contain two adjacent periods"
    if _IPV4.match(name):
        return "bucket names must not be formatted as an IP address"
    if name.startswith("xn--"):
        return "bucket names must not start with 'xn--'"
    if name.endswith("-s3alias"):
        return "bucket names must not end with '-s3alias'"
    return None

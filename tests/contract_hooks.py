"""schemathesis hooks for skiff's contract tests.

schemathesis learns ids from responses (the key list shows the test's own key), and
would then revoke, disable or regenerate the very key it authenticates with, turning
the rest of the run into 401s. The ids in ST_PROTECTED_IDS are swapped for an id that
names nothing just before the request is sent; every other id is left alone.
"""

import os

import schemathesis

PROTECTED = {i for i in os.environ.get("ST_PROTECTED_IDS", "").split(",") if i}
NOWHERE = "6f1c1c52-0000-4000-8000-00000000dead"


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters or {}
    for name, value in list(params.items()):
        if str(value) in PROTECTED:
            params[name] = NOWHERE

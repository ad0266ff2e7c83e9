"""Smart Key Attributes (SKA): M-of-N approval of key use, as the TSB and Primus HSMs do it.

``policy.py`` (the policy model and its evaluation), ``approval_token.py`` (the byte-exact
``approvalToBeSigned`` TLV codec), ``guard.py`` (the guard bits the key-use gate checks on every
use), ``timestamp_key.py`` (the partition's HSM timestamps), ``requests.py`` (the request
lifecycle and scheduler), ``approvals.py`` (tasks, approvals, ``signedApprovals``),
``execution.py`` (what an approved request does: calls of the key-use gate), ``addresses.py``
(blockchain addresses of SKA keys).
"""

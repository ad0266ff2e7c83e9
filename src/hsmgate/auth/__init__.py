"""Who may call hsmgate: API keys per role, JWT bearer tokens, client certificates (mTLS).

* ``roles.py``       the TSB roles and their path patterns (reference §2), as data
* ``api_keys.py``    X-API-KEY, compared in constant time against every configured key
* ``jwt_tokens.py``  bearer tokens: verification (HS256, RS256, ES256, EdDSA) and issuing
* ``mtls.py``        the client certificate of a TLS connection and its mapping to an identity
* ``authenticator.py`` the credentials of one request → a :class:`~hsmgate.domain.principal.Principal`
* ``errors.py``      the TSB errors of authentication (401 with 416 / 631 / 406 / 617 / 618, 403 with 400)

This package imports nothing from ``api``: the HTTP layer hands it header values, the client
certificate and the matched route's path.
"""

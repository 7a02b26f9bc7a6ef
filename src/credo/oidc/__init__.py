"""credo as an OIDC issuer (workload identity): signing keys and their rotation, the discovery
document and JWKS that clouds fetch, the tokens jobs and services present to Entra ID, AWS STS
and GCP STS.

Layer: nothing of credo but ``credo.errors``, ``credo.files`` (atomic writes, which itself uses
only errors) and the pure model ``credo.automation.identity``. The server mints through it; the
CLI (``credo oidc``) reads the same key store on the server host.
"""

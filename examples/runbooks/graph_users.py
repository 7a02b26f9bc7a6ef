"""A runbook that calls Microsoft Graph in another tenant with no stored secret (README, "Cloud
tokens without secrets"): the job's credo token is traded for an access token of a multi-tenant
app in the target tenant (TokenMagician's Get-TmMsiToken, credo style), then Graph lists users.

Parameters: tenant_id (the target tenant), client_id (the multi-tenant app), top (how many users).
The app needs the application permission User.Read.All, consented by the target tenant's admin.

The graph_url parameter, else GRAPH_URL in the environment (a job's environment is the worker's
choice, so parameters are the way for jobs), replaces https://graph.microsoft.com: a national
cloud's Graph (https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn) or a test
stand-in. The token is asked for that resource, since Entra issues a token for one resource only.
"""

import json
import os
import sys
import urllib.request

from credo import runbook

params = runbook.params()
GRAPH = str(params.get("graph_url") or os.environ.get("GRAPH_URL") or "https://graph.microsoft.com").rstrip(
    "/"
)
if not GRAPH.startswith("https://"):  # the bearer token must not travel in clear (nor to a file: URL)
    sys.exit(f"graph_users: the Graph URL {GRAPH!r} is not an https:// URL")
try:
    access = runbook.token(
        tenant_id=params["tenant_id"], client_id=params["client_id"], scope=f"{GRAPH}/.default"
    )
except runbook.TokenError as exc:  # the AADSTS code and its fix, without a traceback in the job's errors
    sys.exit(f"graph_users: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""))
request = urllib.request.Request(  # noqa: S310 (https only, checked above)
    f"{GRAPH}/v1.0/users?$top={int(params.get('top', 5))}&$select=displayName,userPrincipalName",
    headers={"Authorization": f"Bearer {access}"},  # never printed: the output is captured
)
with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
    for user in json.load(answer)["value"]:
        print(f"{user['displayName']}\t{user['userPrincipalName']}")

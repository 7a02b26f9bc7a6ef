"""A runbook that calls Microsoft Graph in another tenant with no stored secret (README, "Cloud
tokens without secrets"): the job's credo token is traded for an access token of a multi-tenant
app in the target tenant (TokenMagician's Get-TmMsiToken, credo style), then Graph lists users.

Parameters: tenant_id (the target tenant), client_id (the multi-tenant app), top (how many users).
The app needs the application permission User.Read.All, consented by the target tenant's admin.
"""

import json
import urllib.request

from credo import runbook

params = runbook.params()
access = runbook.token(
    tenant_id=params["tenant_id"], client_id=params["client_id"], scope="https://graph.microsoft.com/.default"
)
request = urllib.request.Request(
    f"https://graph.microsoft.com/v1.0/users?$top={int(params.get('top', 5))}&$select=displayName,userPrincipalName",
    headers={"Authorization": f"Bearer {access}"},  # never printed: the output is captured
)
with urllib.request.urlopen(request, timeout=30) as answer:
    for user in json.load(answer)["value"]:
        print(f"{user['displayName']}\t{user['userPrincipalName']}")

"""Restricted endpoints (JEA for Linux): definitions, roles, argv matching, session transcripts.

The transport is OpenSSH: an AD user logs in with Kerberos (GSSAPI) and sshd's ForceCommand runs
``credo endpoint serve NAME``. ``credo.endpoint.transcript`` writes each session's hash-chained
JSON lines transcript and its asciicast v2 recording.
"""

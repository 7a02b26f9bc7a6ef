"""The audit tests' directory session as the domain administrator, shared here."""

from tests.audit.conftest import admin_dir, lab_krb5_config  # noqa: F401 (fixtures)

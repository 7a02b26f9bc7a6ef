"""``credo agent``: the resident credential daemon (config, refresh, outputs, socket, metrics).

Kept empty of imports: ``credo run --as`` loads ``credo.agent.fastrun`` on its fast path.
"""

__all__: list[str] = []

"""``python -m credo``: the same entry point as the ``credo`` console script."""

from __future__ import annotations

from credo.launch import main

if __name__ == "__main__":
    main()

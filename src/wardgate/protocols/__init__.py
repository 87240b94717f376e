"""Wire protocols. Each sub-package holds a sans-io codec (no asyncio imports) and the thin
asyncio glue that turns its commands into socket I/O."""

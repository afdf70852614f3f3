"""A small real application used as the library's own test subject (never a mock of publisher_v2).

It has what autoinstrument needs from an app: a log function with the `log_json` convention and a correlation
ContextVar (`applog`), a workflow with an async scope and stages that use `asyncio.gather` and
`asyncio.to_thread` (`workflow`), and one callable of every kind (`kinds`).
"""

"""What the commands print: rich tables built from the core's result objects (no computation here).

One module per command family; each table is plain data in, `rich.table.Table` out, so the command layer
only parses, calls one core function and prints (issue #13).
"""

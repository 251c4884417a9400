"""Whole-node power from the node's BMC (`--node-power`): read on its own thread and interval, never in the GPU poll.

source.py names what a reading is, redfish_http.py and redfish.py read one from a Redfish service,
accounting.py turns readings into an energy counter (the BMC's counter's deltas, or its power integrated),
collector.py serves it. docs/exporter.md, "Node power (BMC)", gives the reasons and rules.
"""

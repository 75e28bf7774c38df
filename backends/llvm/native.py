"""(being written)"""
HEADER_TEXT = ""
def native_sources(schedule, parts, inputs, outputs):
    return {}, {"available": False, "reason": "wip"}

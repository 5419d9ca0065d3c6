"""The sandbox's front door: the WSGI app that routes AWS, registry and knob requests, the AWS wire format
(errors, JSON, paging), and what stands in every request's way (throttling, injected faults)."""

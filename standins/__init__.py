"""Stand-ins: demo and test peers that play the systems the engine talks to. NOT production code.

Touches: network and files, each in its own subpackage (see their docstrings).

Each subpackage plays one remote system, small and strict, so that a client bug shows up as
a refusal rather than as a silent success; the engine's own packages never import them,
except ``eai identity standin`` (the demo command) which loads one lazily.

* :mod:`standins.identity`: the regional identity server (PDQm [ITI-78], PIXm [ITI-83]).

The peers that print what they receive (an MLLP sink, an SMTP sink) belong here too.
"""

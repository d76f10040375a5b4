"""Stand-ins: demo and test peers that play the systems the engine talks to. NOT production code.

Touches: network and files, each in its own subpackage (see their docstrings).

Each subpackage plays one remote system, small and strict, so that a client bug shows up as
a refusal rather than as a silent success; the engine's own packages never import them,
except ``eai identity standin`` (the demo command) which loads one lazily.

* :mod:`standins.identity`: the regional identity server (PDQm [ITI-78], PIXm [ITI-83]);
* :mod:`standins.mllp`: an MLLP peer answering each block (AA, a chosen ACK, none, late, TLS);
* :mod:`standins.dicom`: real DICOM peers (dcmtk's storescp/storescu/echoscu, Orthanc) and
  CT series made from pydicom's test file;
* :mod:`standins.hl7`: the ADT messages a stand-in sender sends (a template with another
  header and patient); :mod:`standins.net`: free ports.

The tests (``tests/``) and the benchmarks (``bench/``) both use this package and never each
other. Peers that print what they receive (an MLLP sink, an SMTP sink) belong here too.
"""

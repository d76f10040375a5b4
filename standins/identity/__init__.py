"""A stand-in for the regional identity server: PDQm and PIXm over HTTP, from a JSON file.

Touches: network (:class:`StandinServer` binds a socket), files (reads the patients file).

THIS IS NOT AN IDENTITY SERVER. The regional identity server (which fronts the national
INSi teleservice) cannot run here; this stand-in answers the two transactions the engine
uses, for the tests and the bundled demo, and CHECKS each request against their shapes so
that a client bug shows up as a refusal rather than as a silent empty answer:

* PDQm [ITI-78] ``GET [base]/Patient?...`` (and ``POST [base]/Patient/_search``): the
  parameters of ITI TF-2 3.78.4.1.2.1 (``_id``, ``active``, ``family``, ``given``,
  ``identifier``, ``birthdate``, ``gender``; ``telecom``, ``address*`` and
  ``mothersMaidenName`` are refused as not implemented here) plus ``birthplace`` (INSEE
  code, a French extension) and ``_format``; ``:exact`` is the only modifier, on strings.
* PIXm [ITI-83] ``GET [base]/Patient/$ihe-pix?sourceIdentifier=<system>|<value>
  {&targetSystem=<uri>}{&_format=...}``: 400 when the source's domain is unknown, 403 when a
  target system is, 404 when the identifier is (ITI TF-2 3.83.4.2.2.2-4).
* ``GET [base]/Patient/<id>`` and ``GET [base]/metadata``.

A malformed request (unknown parameter, empty value, a token that is not ``system|value``
with a URI system, ``1.2.3|x`` without ``urn:oid:``, a date that is not a FHIR date, a
gender outside the value set, no or several ``sourceIdentifier``, an ``_format`` that is
not JSON) is answered 400 (406 for XML) with an ``OperationOutcome`` and recorded in
:attr:`StandinService.violations`, so a test can assert that none happened.

Patients file (JSON)::

    {"regional_system": "urn:oid:1.2.250.1.999.1.1",
     "patients": [{"id": "R0001", "regional_id": "R0001",
                   "ins": "279035121518989", "ins_oid": "1.2.250.1.213.1.4.10",
                   "birth_name": "PAT-TROIS", "used_name": "", "given": ["DOMINIQUE"],
                   "birth_date": "1979-03-28", "gender": "female", "birth_place": "63220",
                   "active": true, "replaced_by": "",
                   "identifiers": [{"system": "urn:oid:1.2.250.1.999.2.1", "value": "000003"}]}]}

Each record is served as an FR Core Patient (INS identifier under its OID, official name
with the birth given names extension, patient-birthPlace with the INSEE code extension).
HTTP/1.1 framing is h11's, as in ``connectors/http_in.py`` (already a dependency; no web
framework for a test peer); requests are handled by :meth:`StandinService.handle`,
which has no I/O, so unit tests drive it through ``httpx.MockTransport``.
"""

from standins.identity._fhir import StandinResponse, Violation, load_patients
from standins.identity._server import StandinServer
from standins.identity._service import StandinService

__all__ = ["StandinResponse", "StandinServer", "StandinService", "Violation", "load_patients"]

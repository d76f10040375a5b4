"""The DMP deletion of a document: an ITI-57 Update Document Set that marks its entry deleted.

Touches: nothing (builds and signs the request; the destination sends it).

The DMP's transaction for deleting a document is TD3.3c "Supprimer un document"
(DMP integration guide DMPi v2.10.0), a logical deletion: an IHE XDS Metadata Update
ITI-57 that changes the document entry's availabilityStatus from ``Approved`` to
``urn:asip:ci-sis:2010:StatusType:Deleted`` (ANS, ``ansforge/IG-FHIR-PDSM4DMP-EEDS``,
``input/pagecontent/index.md``, the table of DMP transactions and their XDS.b
transactions; the status is the ANS terminology TRE_R270 AvailabilityStatus). The request
(IHE XDS Metadata Update supplement, ITI-57; IPF ``iti57.wsdl``): SOAP 1.2 with the
WS-Addressing action ``urn:ihe:iti:2010:UpdateDocumentSet`` and the VIHF, its Body an
``lcm:SubmitObjectsRequest`` holding a submission set and one ``UpdateAvailabilityStatus``
association (submission set -> the entry's entryUUID, slots ``OriginalStatus`` and
``NewStatus``), sent to the DMP's registry endpoint (not the repository's).

The message (ORU with ORC-1 ``CA`` / OBX-11 ``D``, MDM^T04 or T11) carries the CDA of the
document to delete: its ``id`` gives the uniqueId, and the entryUUID is the one eai gave
the entry when it published it (:func:`eai.xds.entry_uuid`), so no
registry query (ITI-18) is needed. A document another system published cannot be deleted
this way (its entryUUID is not derivable).
"""

from __future__ import annotations

from lxml import etree

from connectors.dmp._soap import MtomMessage, soap_message
from connectors.dmp._source import Publication
from connectors.dmp._vihf import SigningIdentity, build_vihf
from connectors.dmp.config import DmpDestinationConfig
from eai.errors import PermanentDeliveryError
from eai.xds import build_status_update, build_submission_set, document_entry_uuid

__all__ = ["deletion_request"]


def deletion_request(
    config: DmpDestinationConfig, signer: SigningIdentity, publication: Publication
) -> tuple[str, MtomMessage]:
    """(the registry endpoint, the ITI-57 request deleting ``publication``'s document).

    Raises PermanentDeliveryError when the destination has no ``registry_url`` or the
    document header lacks what the submission set needs (named)."""
    if not config.registry_url:
        raise PermanentDeliveryError(
            "a deletion (document_action delete) needs the DMP registry's ITI-57 endpoint: "
            "set registry_url on this dmp destination"
        )
    submission = build_submission_set(publication, config.metadata_settings())
    _, target = document_entry_uuid(publication)
    request = build_status_update(submission, target)
    assertion = build_vihf(
        publication.header.author,
        publication.ins,
        publication.ins_oid,
        publication.flags.get("CONNEXION_SECRETE") == "Y",
        config.vihf_settings(),
        signer,
    )
    url = config.registry_url
    return url, soap_message(request, etree.tostring(assertion), url)

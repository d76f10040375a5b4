"""The ANS correspondence tables XDS metadata is derived with (data only; DMP and MSSanté XDM).

Touches: nothing.

Copied as facts from the ANS terminology server's published files (NOS), versions of
2024:

- ``ASS_X04-CorrespondanceType-Classe-CISIS`` (OID 1.2.250.1.213.1.1.4.249, dateMaj
  2024-02-23): document type (LOINC 2.16.840.1.113883.6.1, or TRE_A05
  1.2.250.1.213.1.1.4.12) -> classCode (TRE_A03 1.2.250.1.213.1.1.4.1). The IG
  ``mapping.md``: "classCode est déduit du CDA (champ code) selon la table de
  correspondance ASS_X04". Rows whose class is not in ``JDV_J57-ClassCode-DMP`` (the DMP's
  value set: ``FEUILLE-DE-STYLE`` -> 99) are left out.
- ``JDV_J57-ClassCode-DMP`` (2023-09-22): the classCodes the DMP takes, with their names.
- ``ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS`` (OID 1.2.250.1.213.1.1.4.331, dateMaj
  2024-01-26): CDA model templateId -> formatCode (CI-SIS 1.2.250.1.213.1.1.4.2.282, or
  IHE 1.3.6.1.4.1.19376.1.2.3); the level-1 model 1.3.6.1.4.1.19376.1.2.20 is resolved
  by ``ASS_A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS`` (the body's
  ``nonXMLBody/text/@mediaType``).
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["CLASS_BY_TYPE", "CLASS_NAMES", "FORMAT_BY_MEDIA_TYPE", "FORMAT_BY_TEMPLATE"]

CLASS_NAMES = MappingProxyType(
    {
        "10": "Compte rendu",
        "11": "Synthèse",
        "31": "Imagerie médicale",
        "42": "Prescription",
        "43": "Dispensation",
        "44": "Plan de soins, protocole de soins",
        "45": "Traitement administré",
        "52": "Certificat, déclaration",
        "60": "Données de remboursement",
        "90": "Autres documents déposés par le patient",
        "95": "Document de gestion",
    }
)
"""JDV_J57-ClassCode-DMP: classCode -> display name."""

_BY_CLASS: dict[str, list[str] | tuple[str, ...]] = {
    "10": (
        "10213-7 11488-4 11490-0 11493-4 11502-2 11505-5 11506-3 11526-1 11528-7 15507-7 "
        "15508-5 24611-6 27899-4 28653-4 29274-8 29554-3 34112-3 34749-2 34794-8 34874-8 "
        "34875-5 39256-3 46241-6 47420-5 51969-4 59283-2 60568-3 67851-6 70004-7 75482-0 "
        "75492-9 75497-8 75496-0 77436-4 78513-9 78601-2 83981-1 85208-7 93024-8 96349-6 "
        "BIL_AUTO DOCPAT03 DOCPAT05 DOCPAT06"
    ).split(),
    "11": (
        "18761-7 34133-9 34842-5 56445-0 57055-6 57057-2 57075-4 60591-5 68599-0 68817-6 "
        "74207-2 78489-2 80820-4 83836-7 83901-9 89235-6 88348-8 EXPORT_DUI DOCPAT01 "
        "DOCPAT08 SYNTH"
    ).split(),
    "31": ("18748-4 52040-3 DOCPAT04 IMG-KOS").split(),
    "42": (
        "29551-9 52063-5 52521-2 55115-0 57828-6 57832-8 57833-6 61357-0 75468-9 DOCPAT02 "
        "PRESC-AAT PRESC-BIO PRESC-KINE PRESC-INF PRESC-PEDI PRESC-ORTHOPHO PRESC-ORTHOPTIE"
    ).split(),
    "43": ("29550-1 60593-1 DISP_AUT").split(),
    "44": ("18776-5 77604-7 80771-9 80788-3 83869-8 PROT_ALD").split(),
    "45": ("80565-5",),
    "52": ("11369-6 87273-9 89601-9 96874-3 96173-0 CERT_DECL DOCPAT07").split(),
    "60": ("REMB",),
    "90": ("74465-6 EXPPAT_1 EXPPAT_2 EXPPAT_3 DOCPAT10").split(),
    "95": (
        "51851-4 56446-8 59284-0 86531-1 ATTEST-ASS-COMPL ATTEST-HEBGT ATTEST-RESID "
        "ATTEST-DROITS-AM AUTORIS-SOINS CONTACTS-URGENCE DOCPAT09 PIECE-IDENTITE FICHE-CONTACTS"
    ).split(),
}

CLASS_BY_TYPE = MappingProxyType(
    {type_code: class_code for class_code, types in _BY_CLASS.items() for type_code in types}
)
"""ASS_X04: typeCode (LOINC, or TRE_A05) -> classCode (JDV_J57)."""

_CISIS = "1.2.250.1.213.1.1.4.2.282"
_IHE = "1.3.6.1.4.1.19376.1.2.3"
_M = "1.2.250.1.213.1.1.1."
_CISIS_FORMATS = {
    "5.1": "urn:asip:ci-sis:cse-cs8:2017",
    "5.2": "urn:asip:ci-sis:cse-cs9:2017",
    "5.3": "urn:asip:ci-sis:cse-cs24:2017",
    "5.4": "urn:ans:ci-sis:cse-mde:2023",
    "8": "urn:asip:ci-sis:frcp:2011",
    "9": "urn:asip:ci-sis:idap:2011",
    "10": "urn:asip:ci-sis:cva:2017",
    "12.1": "urn:asip:ci-sis:obp-sap:2023",
    "12.2": "urn:asip:ci-sis:obp-snm:2023",
    "12.3": "urn:asip:ci-sis:obp-sne:2023",
    "12.4": "urn:asip:ci-sis:obp-scm:2023",
    "12.5": "urn:asip:ci-sis:obp-sem:2023",
    "13": "urn:asip:ci-sis:vsm:2012",
    "15": "urn:asip:ci-sis:aunv:2013",
    "16": "urn:asip:ci-sis:eunv:2013",
    "17": "urn:asip:ci-sis:sunv:2013",
    "18": "urn:asip:ci-sis:crrtn:2013",
    "2.1.1": "urn:asip:ci-sis:avk:2009",
    "2.1.2": "urn:asip:ci-sis:tap:2009",
    "2.1.3": "urn:asip:ci-sis:dci:2009",
    "2.1.4": "urn:asip:ci-sis:psc:2009",
    "2.1.5": "urn:asip:ci-sis:ppv:2009",
    "20": "urn:asip:ci-sis:pps-paerpa:2017",
    "21": "urn:asip:ci-sis:ldl-ees:2017",
    "22": "urn:asip:ci-sis:dlu:2015",
    "23": "urn:asip:ci-sis:fludt:2017",
    "24": "urn:asip:ci-sis:fludr:2017",
    "25": "urn:asip:ci-sis:pavc:2016",
    "26": "urn:asip:ci-sis:pps-cancer:2017",
    "27": "urn:asip:ci-sis:d2lm-fin:2017",
    "28": "urn:asip:ci-sis:d2lm-fidd:2017",
    "29": "urn:asip:ci-sis:ldl-ses:2017",
    "30": "urn:asip:ci-sis:sdm-mr:2017",
    "32": "urn:asip:ci-sis:crgm:2018",
    "36": "urn:asip:ci-sis:hr:2019",
    "37": "urn:asip:ci-sis:vac:2019",
    "38": "urn:asip:ci-sis:tlm-da:2020",
    "40": "urn:asip:ci-sis:cr-anest:2020",
    "41": "urn:asip:ci-sis:cr-cpa:2020",
    "46": "urn:asip:ci-sis:vac-note:2021",
    "47": "urn:ans:ci-sis:img-da:2022",
    "48": "urn:asip:ci-sis:dlu-dlu-dom:2022",
    "49": "urn:asip:ci-sis:dlu-fludt-dom:2022",
    "50": "urn:asip:ci-sis:dlu-fludr-dom:2022",
    "52": "urn:ans:ci-sis:bio-ep-bio:2022",
    "56": "urn:asip:ci-sis:ppp:2023",
    "58": "urn:asip:ci-sis:export-dui:2023",
}
_IHE_FORMATS = {
    _M + "39": "urn:ihe:pharm:pre:2010",
    _M + "42": "urn:ihe:eyecare:geneyeevalcn:2014",
    _M + "43": "urn:ihe:eyecare:geneyeevalcn:2014",
    _M + "44": "urn:ihe:eyecare:geneyeevalcn:2014",
    _M + "45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    _M + "51": "urn:ihe:pcc:ips:2020",
    _M + "54": "urn:ihe:pharm:dis:2010",
    _M + "55": "urn:ihe:lab:xd-lab:2008",
    _M + "57": "urn:ihe:palm:apsr:2016",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",
}

FORMAT_BY_TEMPLATE = MappingProxyType(
    {
        **{_M + suffix: (code, _CISIS) for suffix, code in _CISIS_FORMATS.items()},
        **{template: (code, _IHE) for template, code in _IHE_FORMATS.items()},
    }
)
"""ASS_A11: a structured CDA model's templateId -> (formatCode, its coding scheme)."""

FORMAT_BY_MEDIA_TYPE = MappingProxyType(
    {
        "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
        "text/plain": "urn:ihe:iti:xds-sd:text:2008",
        "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
        "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
        "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
    }
)
"""ASS_A12 (with ASS_A11's level-1 rows): a level-1 body's mediaType -> formatCode (IHE)."""

"""The code tables of the CI-SIS business acknowledgements (ZAM), as data.

Touches: nothing.

From the IG "Transmission de documents CDA en HL7 v2"
(ansforge/IG-hl7v2-volet-transmission-document-cda-r2): ``ack-metier-zam.md`` (table
AckMetierZAM, OBX-3), ``error-codes.md`` (SMTPERRORCODE for ZAM^Z02 ERR-5; HL7 0357
messageErrorCondition for ERR-3; applicationErrorCondition for ZAM^Z03 ERR-5) and
``profils-messages.md`` (the DMP's ERR-5 system). Where the IG and the ANS sample
(``zam_business_ack_dmp.er7``) disagree, the sample is followed (docs/business-acks.md).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "ACK_METIER_ZAM",
    "ACK_METIER_ZAM_SYSTEM",
    "APPLICATION_ERROR_CONDITIONS",
    "APPLICATION_ERROR_SYSTEM",
    "DMP_ERROR_SYSTEM",
    "MESSAGE_ERROR_CONDITIONS",
    "MESSAGE_ERROR_SYSTEM",
    "SMTP_ERROR_CODES",
    "SMTP_ERROR_SYSTEM",
    "YES_NO_SYSTEM",
]

ACK_METIER_ZAM_SYSTEM: Final = "AckMetierZAM"
ACK_METIER_ZAM: Final = MappingProxyType(
    {
        "ACK_RECEPTION_DMP": "Accusé de réception DMP",
        "ACK_RECEPTION_MSS": "Accusé de réception MSSanté",
        "DESTINATAIRE_MSS": "Destinataire MSSanté",
        "ACK_LECTURE_MSS": "Accusé de lecture",
        "LECTEUR_MSS": "Lecteur du courriel MSSanté",
    }
)
"""OBX-3 of a ZAM: code -> label (``ack-metier-zam.md``)."""

YES_NO_SYSTEM: Final = "expandedYes-NoIndicator"
"""OBX-5.3 of the status OBX (HL7 table 0136, Y / N)."""

MESSAGE_ERROR_SYSTEM: Final = "messageErrorCondition"
MESSAGE_ERROR_CONDITIONS: Final = MappingProxyType(
    {
        "0": "Message accepted",
        "100": "Segment sequence error",
        "101": "Required field missing",
        "102": "Data type error",
        "103": "Table value not found",
        "198": "Non-conformant cardinality",
        "199": "Other HL7 Error",
        "200": "Unsupported message type",
        "201": "Unsupported event code",
        "202": "Unsupported processing",
        "203": "Unsupported version",
        "207": "Application internal error",
    }
)
"""ERR-3 (HL7 table 0357, ``error-codes.md``). 207 is labelled as the ANS sample and HL7
table 0357 label it ("Application internal error"); the IG's table says "Application
error"."""

DMP_ERROR_SYSTEM: Final = "DMPERRORCODE"
"""ERR-5.3 of a ZAM^Z01: the ANS sample's spelling (the IG's text says ``DMP_ERROR_CODE``).
The codes are the DMP's (annex A7-1 of "Service DMP intégré aux LPS", not public): a
RegistryError's ``errorCode`` as the DMP answers it."""

SMTP_ERROR_SYSTEM: Final = "SMTPERRORCODE"
SMTP_ERROR_CODES: Final = MappingProxyType(
    {
        "101": "Le serveur n'arrive pas à se connecter.",
        "111": "Connexion refusée ou impossibilité d'ouvrir un flux SMTP.",
        "251": "Le compte du destinataire n'est pas sur le serveur actuel. "
        "L'envoi sera donc relayé à un autre serveur.",
        "252": "Le serveur ne peut pas vérifier l'utilisateur. Il confirme cependant "
        "qu'il essaiera de transmettre le message malgré tout",
        "420": "« Problème de connexion de temporisation » : il y a eu des problèmes "
        "pendant le transfert du message.",
        "421": "Le service est indisponible en raison d'un problème de connexion.",
        "422": "La boîte aux lettres du destinataire a dépassé sa limite de stockage.",
        "431": "Espace insuffisant sur le disque, ou état de mémoire insuffisante en raison "
        "d'une surcharge de fichiers.",
        "432": "Mot de passe de transition nécessaire",
        "441": "Le serveur du destinataire ne répond pas",
        "442": "La connexion a été interrompue pendant la transmission",
        "450": "Action non effectuée : boîte-aux-lettres non disponible "
        "[Ex., bloquée par un autre utilisateur]",
        "451": "Action arrêtée : erreur de traitement",
        "452": "Action non effectuée : manque de ressources système.",
        "500": "Erreur de syntaxe, commande non reconnue "
        "[y compris des erreurs de type « ligne de commande trop longue »]",
        "501": "Erreur de syntaxe dans des paramètres ou arguments de commande",
        "502": "Commande non implémentée",
        "503": "Mauvaise séquence de commandes",
        "504": "Paramètre de commande non implémenté",
        "510": "Mauvaise adresse courriel",
        "512": "Ce code indique une erreur DNS. Le serveur hôte du nom de domaine du "
        "destinataire est introuvable.",
        "513": "Le type d'adresse est incorrect. Souvent un problème lié à une faute "
        "d'orthographe. Dans de rares cas, il peut être lié à un problème d'authentification.",
        "523": "La taille totale de votre mailing dépasse les limites du serveur destinataire.",
        "530": "L'authentification est requise. Vous devez authentifier votre compte de "
        "messagerie avant d'envoyer un e-mail",
        "541": "L'adresse du destinataire a rejeté votre message. Dans la plupart des cas, "
        "c'est une erreur causée par un filtre anti-spam.",
        "550": "Action non effectuée : boîte aux lettres non disponible "
        "(ex. : boîte-aux-lettres non trouvée, pas d'accès).",
        "551": "Un relais peut être interrompu car votre adresse et celle du destinataire ne "
        "sont pas hébergées localement par le serveur.",
        "552": "Action abandonnée - Allocation de stockage dépassée. La boîte aux lettres du "
        "destinataire a dépassé ses limites.",
        "553": "La commande a été abandonnée car le nom de la boîte aux lettres n'est pas valide.",
        "554": "Cela signifie que l'envoi a échoué. Ce code indique une erreur permanente et "
        "le serveur n'essaiera pas d'envoyer le message à nouveau.",
    }
)
"""ERR-5 of a ZAM^Z02: SMTP reply code -> label (``error-codes.md``, table SMTPERRORCODE)."""

APPLICATION_ERROR_SYSTEM: Final = "applicationErrorCondition"
APPLICATION_ERROR_CONDITIONS: Final = MappingProxyType(
    {
        "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
        "901": "Auteur non autorisé à remplacer ou supprimer un document",
        "902": "Identifiant patient inconnu",
        "903": "INS non présent dans le document",
        "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du "
        "consommateur",
        "905": "L’INS transmis n’est pas complet",
    }
)
"""ERR-5 of a ZAM^Z03: the receiver's application errors (``error-codes.md``)."""

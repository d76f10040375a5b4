"""Patient identity: which identifiers a message carries and how it is ordered.

Touches: nothing.

The ordering key of the engine core is PID-3's first identifier with its
assigning authority; the identity issue refines it with the reconciled
regional identity.
"""

from identity._patient_key import PatientKey, patient_key_of

__all__ = ["PatientKey", "patient_key_of"]

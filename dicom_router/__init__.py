"""DICOM routing for the e-m@ge imaging network: SCP, spool, coercion, C-STORE out.

Touches: network, files.
"""

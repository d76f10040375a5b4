"""Sinks for demos: local peers that accept what the engine sends and print it. NOT production.

Touches: network (each sink binds a local port), stdout (one line per message or mail).

* :mod:`standins.sinks.mllp`: ``eai sink mllp``, an MLLP receiver answering AA;
* :mod:`standins.sinks.smtp`: ``eai sink smtp``, an SMTP server printing each mail;
* :mod:`standins.sinks.cli`: the ``eai sink`` command group (declared in
  :data:`eai.plugins.COMMANDS`, imported only when it runs).
"""

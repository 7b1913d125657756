"""What leaves a wcd-hpc process, made safe in one place: texts and files.

- :mod:`~wcd_hpc.output.masking`: every text we print or keep without its secrets (passwords,
  tokens), whoever wrote it (our code, a driver, a plugin, a traceback).
- :mod:`~wcd_hpc.output.files`: files written whole or not at all, with the mode the user's own
  files get, and a full disk said in one line.

The package sits below every other layer and imports nothing of wcd-hpc, so that the error
family itself (:mod:`wcd_hpc.errors`) can mask its messages.
"""

"""The PAP-REC search core: prompt layout, gradient capture, candidate scoring, surrogate evaluation,
the alternating schedule, and the resumable run directory."""

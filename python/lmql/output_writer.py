"""
Output writers (output_writer=): what a running query's text is shown
through. A writer is an object with on_text(text, generated), or a
callable taking (text, generated); generated tells the model's tokens
from the query's own prompt text.
"""
import sys


class _Writer:
    def __init__(self, show_prompt=True, show_generated=True, file=None):
        self.show_prompt = show_prompt
        self.show_generated = show_generated
        self.file = file

    def on_text(self, text, generated):
        if (generated and self.show_generated) or (not generated and self.show_prompt):
            f = self.file or sys.stdout
            f.write(text)
            f.flush()


class silent(_Writer):
    def __init__(self):
        super().__init__(False, False)


class headless(silent):
    pass


class printing(_Writer):
    """Prints the prompt and generated text as the query runs."""


class stream(_Writer):
    """Prints generated text as it is produced (LMQL's stream("VAR") prints
    one variable; here the text of every hole)."""

    def __init__(self, variable=None):
        super().__init__(False, True)
        self.variable = variable


# LMQL uses the classes and instances alike: lmql.printing, lmql.silent.
printing = printing()
silent = silent()
headless = headless()

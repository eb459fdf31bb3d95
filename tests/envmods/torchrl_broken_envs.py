"""A module that fails to import, as a user's module with a missing dependency would."""

raise ImportError("needs the frobnicator package")

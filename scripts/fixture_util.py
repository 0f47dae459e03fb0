"""Helpers shared by the task fixture generators in scripts/ (not by the C++ code they check)."""


def last_boxed(s):
    """The contents of the last \\boxed{...} (or \\fbox{...}) in s, braces balanced; None if absent."""
    idx = s.rfind("\\boxed")
    if idx < 0:
        idx = s.rfind("\\fbox")
        if idx < 0:
            return None
    depth, left = 0, None
    for i in range(idx, len(s)):
        if s[i] == "{":
            depth += 1
            left = i if left is None else left
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[left + 1:i].strip()
    return None

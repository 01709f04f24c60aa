# <<template only>>
# Template: the overflow-safe helpers every generated <member>_bounds.py embeds (plain Python, no Numba),
# pasted by softsym.derive.bounds.normalized.emit_module; the template syntax is
# softsym.derive.codegen.template's.  No values.  The module it is pasted into imports math.
import math


# <<end template only>>
def _guard(f, x):
    try:
        return f(x)
    except OverflowError:
        return math.copysign(math.inf, x) if f is not math.cosh else math.inf


def _exp(x):
    return _guard(math.exp, x)


def _sinh(x):
    return _guard(math.sinh, x)


def _cosh(x):
    return _guard(math.cosh, x)


def _pow(x, y):
    try:
        return x ** y
    except OverflowError:
        return math.inf if x > 0 or float(y).is_integer() and int(y) % 2 == 0 else -math.inf
    except ZeroDivisionError:
        return math.inf


def _hmin(*a):
    return math.nan if any(v != v for v in a) else min(a)


def _hmax(*a):
    return math.nan if any(v != v for v in a) else max(a)


def _least(*a):
    a = [v for v in a if v == v]
    return min(a) if a else math.nan


def _greatest(*a):
    a = [v for v in a if v == v]
    return max(a) if a else math.nan

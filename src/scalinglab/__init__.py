"""scalinglab: run and analyse scaling-law studies.

The public API: `ScalingLaw` to fit laws, the observations table helpers, and the form registry.
"""

__version__ = "0.1.0"

from scalinglab.errors import UserError  # noqa: E402
from scalinglab.fit.forms import FORMS, get_form  # noqa: E402
from scalinglab.fit.law import ScalingLaw  # noqa: E402
from scalinglab.observations import SCHEMA, read_table, select_fit_data  # noqa: E402

__all__ = ["FORMS", "SCHEMA", "ScalingLaw", "UserError", "__version__", "get_form", "read_table", "select_fit_data"]

"""``python -m xsim.crosscheck --seeds 0:1000 --jobs 2``: a seeded interp/jit campaign."""
from .diff import main

raise SystemExit(main())

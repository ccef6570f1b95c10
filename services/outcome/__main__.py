from services.lib.runtime.service import main
from services.outcome.app import SPEC

main(SPEC)

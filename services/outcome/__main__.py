from services.outcome.app import SPEC
from services.runtime.service import main

main(SPEC)

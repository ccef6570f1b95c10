from services.intake.app import SPEC
from services.lib.runtime.service import main

main(SPEC)

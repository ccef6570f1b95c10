from services.lib.runtime.service import main
from services.scheduling.app import SPEC

main(SPEC)

from services.lib.runtime.service import main
from services.referral.app import SPEC

main(SPEC)

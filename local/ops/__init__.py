"""Operations against real AWS and CI checks: deploy, publish, `sam local` set-up, build checks."""

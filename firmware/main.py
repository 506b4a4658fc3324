# Runs at boot on the board: the scfw package sits beside this file at the filesystem root.
from scfw import app

app.main()

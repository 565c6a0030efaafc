"""Command-line layers: the recipe scripts' shared flags and the ``funasr-lite`` console command."""

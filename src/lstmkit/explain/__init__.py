"""lstmkit.explain"""

"""lstmkit.nn"""

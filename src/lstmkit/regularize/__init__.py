"""lstmkit.regularize"""

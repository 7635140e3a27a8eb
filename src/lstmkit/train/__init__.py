"""lstmkit.train"""
